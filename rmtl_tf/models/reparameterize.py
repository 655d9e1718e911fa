"""RCM for any Keras CNN: `reparameterize(backbone, tasks)`.

Takes a Keras functional model (e.g. `keras.applications.MobileNetV2`, a
Keras Hub `ResNetBackbone`, your own) and returns a `ReparameterizedModel`
with one output per task, each the backbone's output computed through that
task's own parts, all tasks sharing one frozen bank.

What becomes of each layer (by class; `rules` overrides by layer name or
class name):

| layer | rule | why |
|---|---|---|
| `Conv2D` (groups 1) | **reparameterize**: one `ReparamConv2D`, bank = the pretrained kernel, per-task modulator (identity) and bias (the pretrained one) | the method |
| 1x1 `Conv2D` with `c_out >= c_in` | **per task** (`pointwise="auto"`, the default) | a modulator would be larger than the conv and compute no other functions |
| `SeparableConv2D` | its depthwise part **frozen**, its pointwise part **reparameterized** | as the two layers it is |
| `DepthwiseConv2D` | **frozen**, shared | no channel mixing to modulate: the next conv's modulator recombines its responses |
| `BatchNormalization`, `LayerNormalization`, `GroupNormalization` | **per task**, a copy starting at the pretrained values | normalization is per task in RCM |
| `Dense` | **per task**, a copy starting at the pretrained values | dense layers of CNNs are heads |
| `Normalization` (input statistics) | **frozen**, shared | preprocessing |
| a layer without weights | shared | nothing to adapt |
| any other layer with weights (`Conv2D` with groups > 1, `Conv1D`, `Conv2DTranspose`, `Embedding`, a nested model, a custom layer) | **refused** with the layer's name, unless `rules` names it | sharing it trainably would break the old-task guarantee |

"per_task" and "frozen" copy the layer itself (`from_config` plus its
weights), so subclasses keep their behaviour; "reparameterize" rebuilds the
computation and applies to `Conv2D` and `SeparableConv2D` only.

A task added later (`rmtl_tf.add_task(model, task)`) reuses every layer
and variable of the old tasks, so their outputs stay bit-identical; its own
parts start from the pretrained values, which the model keeps (as numpy
arrays saved with it, not variables: they are in `model.keras` files, not in
exports).

With `images`, the banks are response-initialized as the ResNets are
(`rmtl_tf.models.response_init`): each reparameterized `Conv2D`'s responses
on the images are decomposed by PCA (components `U`), its bank becomes
`W U` and every task's modulator starts at `U^T`, so each task still
computes the pretrained function.
"""

import json

import keras
import numpy as np
from keras import tree

from rmtl_tf.layers import task_state
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models import task_views
from rmtl_tf.models.layer_factory import task_layer_name
from rmtl_tf.models.response_init import ResponseStatistics

RULES = ("reparameterize", "per_task", "frozen")
# Default rule per layer class (a class's first match along its MRO, except
# "reparameterize", which needs the exact class: it replaces the layer's
# computation).
DEFAULT_RULES = {
    "Conv2D": "reparameterize",
    "SeparableConv2D": "reparameterize",
    "DepthwiseConv2D": "frozen",
    "BatchNormalization": "per_task",
    "LayerNormalization": "per_task",
    "GroupNormalization": "per_task",
    "Dense": "per_task",
    "Normalization": "frozen",
}
_REPARAMETERIZABLE = ("Conv2D", "SeparableConv2D")
POINTWISE = ("auto", "reparameterize")
# The pretrained values kept in the model, under "<layer>.<i>" keys.
_KEY_SEPARATOR = "."


def reparameterize(backbone, tasks, nff=False, rules=None, pointwise="auto",
                   images=None, name=None):
    """RCM for a Keras functional `backbone`: see the module docstring.

    Args:
        backbone: a built functional (or Sequential) Keras model, pretrained.
        tasks: task names (lower-case letters, digits, `_`).
        nff: weight-normalized modulators (normalized feature fusion).
        rules: optional dict, layer name or class name -> "reparameterize",
            "per_task" or "frozen", over `DEFAULT_RULES`.
        pointwise: "auto" (default): a 1x1 `Conv2D` with at least as many
            outputs as inputs becomes a per-task copy instead (a modulator,
            `c_out^2`, would outgrow the conv, `c_in c_out`, and compute no
            other functions: `W M` spans every `c_in x c_out` matrix when
            `W` has full row rank); "reparameterize": every `Conv2D` is.
        images: optional batches (an iterable of arrays shaped like the
            backbone's input) for response initialization.
        name: the model's name (default: `<backbone name>_rcm`).

    Returns:
        a `ReparameterizedModel`: outputs `{task: backbone output}`.

    Example:

    ```python
    backbone = keras.applications.MobileNetV2(include_top=False,
                                              input_shape=(224, 224, 3))
    model = rmtl_tf.reparameterize(backbone, ["semseg", "depth"])
    features = model(images)["depth"]
    model = rmtl_tf.add_task(model, "normals")  # semseg, depth unchanged
    ```
    """
    pretrained = None
    if images is not None:
        pretrained = response_components(_functional(backbone), rules,
                                         pointwise, images)
    return ReparameterizedModel(backbone, tasks, nff=nff, rules=rules,
                                pointwise=pointwise, pretrained=pretrained,
                                name=name or f"{backbone.name}_rcm")


def _functional(backbone):
    if isinstance(backbone, keras.Sequential):
        if not backbone.built:
            raise ValueError("The Sequential backbone must be built (give "
                             "it an `Input`) before it is reparameterized.")
        return keras.Model(backbone.inputs, backbone.outputs,
                           name=backbone.name)
    if not isinstance(backbone, keras.Model) or not hasattr(
            backbone, "_nodes_by_depth"):
        raise TypeError("`backbone` must be a functional Keras model. "
                        f"Received: {type(backbone).__name__}")
    return backbone


def _check_rules(rules):
    rules = dict(rules or {})
    for key, rule in rules.items():
        if rule not in RULES:
            raise ValueError(f"Unknown rule {rule!r} for {key!r}. Expected "
                             f"one of {RULES}.")
    return rules


def layer_rule(layer, rules=None, pointwise="auto"):
    """The rule of `layer`: "reparameterize", "per_task", "frozen" or
    "shared" (no weights); raises `ValueError` for a weighted layer no rule
    covers. `pointwise`: see `reparameterize`."""
    rules = _check_rules(rules)
    if pointwise not in POINTWISE:
        raise ValueError(f"`pointwise` must be one of {POINTWISE}. "
                         f"Received: pointwise={pointwise!r}")
    cls = type(layer).__name__
    explicit = rules.get(layer.name) or rules.get(cls)
    merged = {**DEFAULT_RULES, **rules}
    rule = explicit or merged.get(cls)
    if rule is None:  # A subclass takes its parent's rule...
        rule = next((merged[p.__name__] for p in type(layer).__mro__[1:]
                     if p.__name__ in merged), None)
        if rule == "reparameterize":
            rule = None  # ...unless that rebuilds its computation.
    if rule == "reparameterize":
        config = layer.get_config()
        if cls not in _REPARAMETERIZABLE:
            raise ValueError(
                f"Layer {layer.name!r} ({cls}) cannot be reparameterized: "
                f"only {_REPARAMETERIZABLE} can. Give it the rule "
                "'per_task' or 'frozen'.")
        if config.get("data_format", "channels_last") != "channels_last":
            raise ValueError(f"Layer {layer.name!r}: only channels_last "
                             "convolutions can be reparameterized.")
        if config.get("groups", 1) != 1:
            if explicit:
                raise ValueError(
                    f"Layer {layer.name!r} is a grouped Conv2D (groups="
                    f"{config['groups']}): it cannot be reparameterized. "
                    "Give it the rule 'per_task' or 'frozen'.")
            rule = None
        elif (not explicit and pointwise == "auto"
              and tuple(config["kernel_size"]) == (1, 1)
              and cls == "Conv2D"
              and config["filters"] >= layer.kernel.shape[2]):
            rule = "per_task"  # Its modulator would outgrow the conv.
    if rule is None and not layer.weights:
        return "shared"
    if rule is None:
        raise ValueError(
            f"Layer {layer.name!r} ({cls}) has weights and no rule for them "
            f"(rules cover {sorted(DEFAULT_RULES)}; grouped Conv2D and "
            "subclasses of the convs excepted). Sharing it trainably would "
            "change the other tasks; pass rules={"
            f"{layer.name!r}: 'per_task'}} (each task its own copy) or "
            "'frozen' (one frozen copy for all tasks).")
    return rule


def _operations(backbone):
    """The backbone's layers in graph order (input layers excluded)."""
    return [l for l in backbone.layers
            if not isinstance(l, keras.layers.InputLayer)]


def _plan(backbone, rules, pointwise):
    """Layer name -> `layer_rule` for every layer of `backbone`."""
    return {l.name: layer_rule(l, rules, pointwise)
            for l in _operations(backbone)}


def _pretrained_values(backbone, plan):
    """What new tasks start from: per-task layers' weights, conv biases."""
    values = {}
    for layer in _operations(backbone):
        if plan[layer.name] == "per_task":
            values[layer.name] = [np.asarray(w) for w in layer.get_weights()]
        elif plan[layer.name] == "reparameterize" and layer.use_bias:
            values[f"{layer.name}{_KEY_SEPARATOR}bias"] = [
                np.asarray(layer.bias)]
    return values


def _bank_kernel(layer):
    """The kernel of the bank a reparameterized layer gets (HWIO)."""
    if isinstance(layer, keras.layers.SeparableConv2D):
        return np.asarray(layer.pointwise_kernel)
    return np.asarray(layer.kernel)


def response_components(backbone, rules, pointwise, images):
    """PCA components of every reparameterized `Conv2D`'s responses (the
    kernel applied to the layer's inputs, without bias) on `images`:
    `{"<layer>.components": [U]}`."""
    plan = _plan(backbone, rules, pointwise)
    convs = [l for l in _operations(backbone)
             if plan[l.name] == "reparameterize"
             and type(l).__name__ == "Conv2D"]
    probe = keras.Model(backbone.inputs, [l.input for l in convs])
    stats = [ResponseStatistics(l.filters) for l in convs]
    seen = 0
    for batch in images:
        inputs = probe(batch, training=False)
        for layer, x, stat in zip(convs, inputs, stats):
            responses = keras.ops.conv(x, layer.kernel, layer.strides,
                                       layer.padding,
                                       dilation_rate=layer.dilation_rate)
            stat.update(keras.ops.convert_to_numpy(responses))
        seen += 1
    if not seen:
        raise ValueError("Response initialization needs at least one batch "
                         "of images.")
    return {f"{l.name}{_KEY_SEPARATOR}components":
            [s.pca()[0].astype(np.float32)] for l, s in zip(convs, stats)}


@keras.saving.register_keras_serializable(package="rmtl_tf")
class ReparameterizedModel(keras.Model):
    """A Keras CNN reparameterized for incremental multi-task learning.

    Build it with `reparameterize(backbone, tasks)`; see the module
    docstring for what becomes of each layer. Outputs are a dict keyed by
    task of the backbone's output structure.

    Args:
        backbone: the pretrained functional model, or its serialized form
            (a `.keras` file is loaded so; the weights then come from the
            file).
        tasks: task names.
        nff: weight-normalized modulators.
        rules: overrides of `DEFAULT_RULES` by layer or class name.
        pointwise: how 1x1 convs are held; see `reparameterize`.
        reuse_layers: dict name -> layer of an existing model (`add_task`).
        pretrained: the values new tasks start from (`add_task`); by default
            taken from `backbone`.
    """

    def __init__(self, backbone, tasks, nff=False, rules=None,
                 pointwise="auto", reuse_layers=None, pretrained=None,
                 **kwargs):
        # The backbone's config is kept as given when loading: serializing
        # the rebuilt one again could differ (shared-object ids).
        backbone_config = None
        if isinstance(backbone, dict):  # Deserializing empties the dict.
            backbone_config = json.loads(json.dumps(backbone))
            backbone = keras.saving.deserialize_keras_object(backbone)
        backbone = _functional(backbone)
        tasks = [task_state.validate_task_name(t) for t in (
            [tasks] if isinstance(tasks, str) else list(tasks))]
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError("`tasks` must name at least one task, each "
                             f"once. Received: tasks={tasks}")
        rules = _check_rules(rules)
        plan = _plan(backbone, rules, pointwise)
        values = _pretrained_values(backbone, plan)
        values.update(pretrained or {})
        builder = _Builder(backbone, tasks, plan, nff, reuse_layers, values)
        inputs = tree.map_structure(
            lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype,
                                  name=x.name), backbone.input)
        outputs = {task: builder.replay(inputs, task) for task in tasks}
        kwargs.setdefault("name", f"{backbone.name}_rcm")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        builder.initialize()
        self.tasks = tasks
        self.nff = bool(nff)
        self.rules = rules
        self.pointwise = pointwise
        self.layer_owners = dict(builder.owners)
        self._backbone_json = json.dumps(
            backbone_config or keras.saving.serialize_keras_object(backbone))
        self._pretrained = _Values(values)
        self.set_trainable_tasks(tasks)

    def get_config(self):
        return {"name": self.name, "tasks": list(self.tasks),
                "nff": self.nff, "rules": dict(self.rules),
                "pointwise": self.pointwise,
                "backbone": json.loads(self._backbone_json)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- the pretrained values new tasks start from ----------------------------

    @property
    def pretrained(self):
        """`{key: [arrays]}`: per-task layers' and conv biases' pretrained
        values (and RI components), what a new task starts from."""
        return {k: list(v) for k, v in self._pretrained.values.items()}

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for key, arrays in sorted(self._pretrained.values.items()):
            for i, array in enumerate(arrays):
                store[f"pretrained{_KEY_SEPARATOR}{key}{_KEY_SEPARATOR}"
                      f"{i}"] = array

    def load_own_variables(self, store):
        prefix = f"pretrained{_KEY_SEPARATOR}"
        expected = {f"{prefix}{k}{_KEY_SEPARATOR}{i}"
                    for k, arrays in self._pretrained.values.items()
                    for i in range(len(arrays))}
        stored = {k for k in store.keys() if k.startswith(prefix)}
        if stored != expected:
            raise ValueError(
                f"Model {self.name!r} cannot load these pretrained values: "
                f"missing {sorted(expected - stored)[:5]}, unexpected "
                f"{sorted(stored - expected)[:5]}. The file was written by "
                "a model of another backbone or other rules.")
        for key, arrays in self._pretrained.values.items():
            for i in range(len(arrays)):
                value = np.asarray(
                    store[f"{prefix}{key}{_KEY_SEPARATOR}{i}"])
                if value.shape != arrays[i].shape:
                    raise ValueError(
                        f"Pretrained value {key!r} has shape {value.shape} "
                        f"in the file, expected {arrays[i].shape}.")
                arrays[i] = value

    # -- task-level views (as `MultiTaskModel`'s) ------------------------------

    def bank_layers(self):
        """The `ReparamConv2D` layers: frozen banks, per-task modulators."""
        return [l for l in self.layers if isinstance(l, ReparamConv2D)]

    def bank_variables(self):
        """Every frozen shared variable: the banks and the frozen layers."""
        return [l.bank for l in self.bank_layers()] + [
            v for l in self.layers if not isinstance(l, ReparamConv2D)
            and l.name not in self.layer_owners for v in l.weights]

    def task_variables(self, task):
        """Every variable owned by `task`."""
        return task_views.task_variables(self, task)

    def _check_task(self, task):
        task_views.check_task(self, task)

    def set_trainable_tasks(self, tasks):
        """Makes exactly `tasks`' variables trainable; nothing shared ever
        is. Other tasks' normalization layers then run in inference mode."""
        tasks = list(tasks)
        for task in tasks:
            self._check_task(task)
        for layer in self.layers:
            if isinstance(layer, ReparamConv2D):
                layer.bank.trainable = False
                for task in layer.tasks:
                    for variable in layer.task_variables(task):
                        variable.trainable = task in tasks
            elif layer.name in self.layer_owners:
                layer.trainable = self.layer_owners[layer.name] in tasks
            elif layer.weights:
                layer.trainable = False

    def task_model(self, tasks):
        """A model of the same layers with only `tasks`' outputs."""
        return task_views.task_model(self, tasks)


def add_task(model, task):
    """`model` with `task` (a name or a list) added: every layer and
    variable of the old tasks reused, so their outputs stay bit-identical;
    the new task's parts start from the pretrained values."""
    new = [task] if isinstance(task, str) else list(task)
    for t in new:
        if t in model.tasks:
            raise ValueError(f"Task {t!r} already exists; the model's tasks "
                             f"are {model.tasks}.")
    config = model.get_config()
    config["tasks"] = list(model.tasks) + new
    return ReparameterizedModel(
        reuse_layers={l.name: l for l in model.layers},
        pretrained=model.pretrained, **config)


class _Values:  # pylint: disable=too-few-public-methods
    """Holds numpy arrays out of Keras' attribute tracking."""

    def __init__(self, values):
        self.values = values


class _Builder:
    """Replays the backbone's graph once per task, creating (or reusing) the
    layers each rule asks for, and initializes what it created."""

    def __init__(self, backbone, tasks, plan, nff, reuse, values):
        self.backbone = backbone
        self.tasks = tasks
        self.plan = plan
        self.nff = nff
        self.layers = dict(reuse or {})
        self.values = values
        self.owners = {}
        self.inits = []
        self.sources = {l.name: l for l in _operations(backbone)}

    def _get(self, name, make, init=None):
        if name not in self.layers:
            if name in self.sources and self.plan[name] == "per_task":
                raise ValueError(f"Layer name {name!r} is both a layer of "
                                 "the backbone and a per-task copy's name; "
                                 "rename the layer or the task.")
            self.layers[name] = make()
            if init is not None:
                self.inits.append(init)
        return self.layers[name]

    def _clone(self, layer, name, trainable=True):
        config = dict(layer.get_config(), name=name, trainable=trainable)
        return layer.__class__.from_config(config)

    def replay(self, inputs, task):
        def call(layer, *args, **kwargs):
            return self._call(layer, task, args, kwargs)
        model = keras.models.clone_model(
            self.backbone, input_tensors=inputs,
            clone_function=lambda layer: layer, call_function=call)
        return model.output

    def _call(self, layer, task, args, kwargs):
        rule = self.plan[layer.name]
        if rule == "per_task":
            name = task_layer_name(layer.name, task)
            self.owners[name] = task
            copy = self._get(name, lambda: self._clone(layer, name),
                             lambda: self._set(name, self.values[layer.name]))
            return copy(*args, **kwargs)
        if rule in ("frozen", "shared"):
            copy = self._get(layer.name, lambda: self._clone(
                layer, layer.name, trainable=rule == "shared"),
                lambda: self._set(layer.name, layer.get_weights()))
            return copy(*args, **kwargs)
        x = args[0]
        if isinstance(layer, keras.layers.SeparableConv2D):
            x = self._depthwise(layer)(x)
        out = self._reparam(layer)(x, task=task)
        activation = layer.get_config().get("activation", "linear")
        if activation not in ("linear", None):
            name = f"{layer.name}_activation"
            out = self._get(name, lambda: keras.layers.Activation(
                activation, name=name))(out)
        return out

    def _set(self, name, weights):
        if weights:
            self.layers[name].set_weights(weights)

    def _depthwise(self, layer):
        name = f"{layer.name}_depthwise"
        config = layer.get_config()

        def make():
            return keras.layers.DepthwiseConv2D(
                config["kernel_size"], strides=config["strides"],
                padding=config["padding"],
                depth_multiplier=config["depth_multiplier"],
                dilation_rate=config["dilation_rate"], use_bias=False,
                trainable=False, name=name, dtype=layer.dtype_policy)
        return self._get(name, make, lambda: self.layers[name].set_weights(
            [np.asarray(layer.depthwise_kernel)]))

    def _reparam(self, layer):
        config = layer.get_config()
        separable = isinstance(layer, keras.layers.SeparableConv2D)
        components = self.values.get(
            f"{layer.name}{_KEY_SEPARATOR}components")

        def make():
            return ReparamConv2D(
                config["filters"],
                1 if separable else config["kernel_size"],
                strides=1 if separable else config["strides"],
                padding="valid" if separable else config["padding"],
                dilation_rate=1 if separable else config["dilation_rate"],
                tasks=self.tasks, nff=self.nff, use_bias=config["use_bias"],
                name=layer.name, dtype=layer.dtype_policy)

        def init_bank():
            kernel = _bank_kernel(layer)
            if components is not None:
                kernel = np.tensordot(kernel.astype(np.float64),
                                      components[0], axes=[[3], [0]])
            self.layers[layer.name].bank.assign(kernel.astype(np.float32))

        new = layer.name not in self.layers
        reparam = self._get(layer.name, make, init_bank if new else None)
        new_tasks = [t for t in self.tasks if t not in reparam.tasks]
        for t in new_tasks:
            reparam.add_task(t)
        if new or new_tasks:
            self.inits.append(lambda: self._init_tasks(
                reparam, self.tasks if new else new_tasks, components))
        return reparam

    def _init_tasks(self, layer, tasks, components):
        bias = self.values.get(f"{layer.name}{_KEY_SEPARATOR}bias")
        for task in tasks:
            if components is not None:
                layer.set_modulator(task, components[0].T)
            if bias is not None:
                layer.biases[task].assign(bias[0])

    def initialize(self):
        for init in self.inits:
            init()
