"""Reads PyTorch `.pth` checkpoints without PyTorch, safely.

`torch.save` writes one of two layouts, both read here:

- the zip layout (PyTorch >= 1.6): `<name>/data.pkl`, a pickle of the
  object whose tensors point by key at raw storages `<name>/data/<key>`
  (`<name>/byteorder` says their byte order, little-endian when absent);
- the legacy layout (torchvision's ImageNet ResNets, e.g.
  `resnet18-5c106cde.pth`): consecutive pickles (magic number, protocol
  version, system info, the object, its storage keys), then each storage
  as an int64 element count and the raw elements.

The pickles are read by an unpickler that knows only what a state dict is
made of: dicts and `collections.OrderedDict`, tensors
(`torch._utils._rebuild_tensor[_v2]`, `_rebuild_parameter`) and their typed
storages (`torch.FloatStorage`, ...). Any other global (a class, a
function, a module's source) is refused with `UnsafeCheckpointError` before
anything is built, so no code of the file runs. Tensors come back as
numpy arrays (bfloat16 as float32).
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> (numpy dtype, bytes per element).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """The file holds something other than tensors and dicts."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        dtype = _STORAGE_DTYPES[name]
        self.bfloat16 = dtype == "bfloat16"
        self.dtype = np.dtype(np.uint16 if self.bfloat16 else dtype)


class _Storage:
    """A typed storage whose bytes arrive now (zip) or later (legacy)."""

    def __init__(self, storage_type, numel, data=None):
        self.type, self.numel, self.data = storage_type, int(numel), data

    def array(self, byteorder):
        if self.data is None:
            raise ValueError("A storage of the checkpoint has no data.")
        dtype = self.type.dtype.newbyteorder(
            "<" if byteorder == "little" else ">")
        values = np.frombuffer(self.data, dtype, count=self.numel)
        values = values.astype(self.type.dtype.newbyteorder("="))
        if self.type.bfloat16:
            values = (values.astype(np.uint32) << 16).view(np.float32)
        return values


class _Tensor:
    """A tensor to build once its storage has its bytes."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(size), tuple(stride)

    def array(self, byteorder):
        flat = self.storage.array(byteorder)
        if not self.size:
            return np.array(flat[self.offset])
        itemsize = flat.itemsize
        end = self.offset + sum((n - 1) * s for n, s in zip(self.size,
                                                             self.stride))
        if min(self.size) > 0 and (self.offset < 0 or end >= flat.size):
            raise ValueError("A tensor of the checkpoint reaches outside "
                             "its storage.")
        return np.lib.stride_tricks.as_strided(
            flat[self.offset:], self.size,
            [s * itemsize for s in self.stride]).copy()


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    del unused  # requires_grad, backward hooks, metadata.
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError("A tensor of the checkpoint is not "
                                    "backed by a storage.")
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    del unused
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    """Builds dicts, tensors and storages only (see the module doc)."""

    def __init__(self, file, storages, load_storage):
        super().__init__(file, encoding="utf-8")
        self.storages = storages
        self.load_storage = load_storage

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise UnsafeCheckpointError(
            f"Refusing to load {module}.{name} from the checkpoint: only "
            "tensors and (ordered) dicts of them are read (no code runs).")

    def persistent_load(self, pid):
        kind = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise UnsafeCheckpointError(
                f"Refusing a {kind!r} record of the checkpoint: only tensor "
                "storages are read.")
        storage_type, key, _, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError("A storage of the checkpoint has no "
                                        "known element type.")
        key = key.decode() if isinstance(key, bytes) else str(key)
        view = pid[5] if len(pid) > 5 else None
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, numel,
                                          self.load_storage(key))
        storage = self.storages[key]
        if view is not None:  # Legacy storage views: (key, offset, size).
            _, offset, size = view
            return _View(storage, offset, size)
        return storage


class _View(_Storage):
    """A legacy view of a storage: `size` elements from `offset`."""

    def __init__(self, base, offset, size):  # pylint: disable=super-init-not-called
        self.base, self.offset, self.numel = base, int(offset), int(size)
        self.type = base.type

    def array(self, byteorder):
        return self.base.array(byteorder)[self.offset:self.offset
                                          + self.numel]


def _materialize(value, byteorder):
    if isinstance(value, _Tensor):
        return value.array(byteorder)
    if isinstance(value, dict):
        out = collections.OrderedDict() if isinstance(
            value, collections.OrderedDict) else {}
        for key, item in value.items():
            out[key] = _materialize(item, byteorder)
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(_materialize(v, byteorder) for v in value)
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return value
    raise UnsafeCheckpointError(f"Unexpected {type(value).__name__} in the "
                                "checkpoint.")


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path!r} is a zip file but not a PyTorch "
                             f"checkpoint (no single data.pkl: {names[:5]}).")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode().strip()

        def load_storage(key):
            return archive.read(f"{prefix}data/{key}")

        unpickler = _Unpickler(io.BytesIO(archive.read(pickles[0])), {},
                               load_storage)
        return _materialize(unpickler.load(), byteorder)


def _read_legacy(path):
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
            protocol = pickle.load(f)
        except Exception as e:  # pylint: disable=broad-except
            raise ValueError(f"{path!r} is not a PyTorch checkpoint: {e}") \
                from e
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise ValueError(f"{path!r} is not a PyTorch checkpoint (magic "
                             f"{magic!r}, protocol {protocol!r}).")
        sys_info = _Unpickler(f, {}, None).load()
        little = sys_info.get("little_endian", True) if isinstance(
            sys_info, dict) else True
        storages = {}
        result = _Unpickler(f, storages, lambda key: None).load()
        keys = _Unpickler(f, {}, None).load()
        order = "<" if little else ">"
        for key in keys:
            key = key.decode() if isinstance(key, bytes) else str(key)
            if key not in storages:
                raise ValueError(f"{path!r} lists a storage {key!r} that no "
                                 "tensor uses.")
            storage = storages[key]
            header = f.read(8)
            numel = struct.unpack(order + "q", header)[0] if len(
                header) == 8 else -1
            nbytes = numel * storage.type.dtype.itemsize
            storage.data = f.read(max(nbytes, 0))
            if numel < 0 or len(storage.data) != nbytes:
                raise ValueError(f"{path!r} is truncated (storage {key!r}).")
            storage.numel = numel
        return _materialize(result, "little" if little else "big")


def load(path):
    """The object saved in the `.pth` file `path`, tensors as numpy arrays.

    Raises `UnsafeCheckpointError` when it holds anything but tensors and
    (nested, ordered) dicts, lists and plain values; `ValueError` when it
    is not a PyTorch checkpoint.
    """
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_legacy(path)
