r"""Mean and spread of one results table run with several seeds.

Each input is the JSON that `experiments/results_table.py --output=X.md`
writes beside X.md (X.json), one per seed, with the same rows. Writes the
table with mean ± sample standard deviation per cell and the dm orderings
that hold beyond the spread (difference of means larger than the sum of
the two standard deviations).

  python experiments/seeds_table.py \
      --output=experiments/results/variants_synthetic.md \
      runs/variants_synthetic/seed0.json runs/variants_synthetic/seed1.json \
      runs/variants_synthetic/seed2.json
"""

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from rmtl_tf.cli.errors import run_cli  # pylint: disable=wrong-import-position
from rmtl_tf.evaluation import results_table  # pylint: disable=wrong-import-position

_OUTPUT = flags.DEFINE_string(
    "output", None, "Also write the markdown here (and the aggregated rows "
    "as JSON beside it, same name with .json).")


def _load(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No results table {path!r} (the .json "
                                "that results_table.py --output writes).")
    with open(path, encoding="utf-8") as f:
        try:
            table = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path!r} is not JSON: {e}.") from None
    if "rows" not in table:
        raise ValueError(f"{path!r} has no 'rows': expected the .json that "
                         "results_table.py --output writes.")
    return table


def main(argv):
    paths = argv[1:]
    if len(paths) < 2:
        raise ValueError("Give the results tables of at least two seeds "
                         f"(.json files). Received: {paths}")
    tables = [_load(p) for p in paths]
    references = {t.get("reference") for t in tables}
    if len(references) != 1:
        raise ValueError(f"The tables have different references: "
                         f"{sorted(map(str, references))}.")
    aggregated = results_table.aggregate_seeds(tables)
    text = results_table.format_seeds_markdown(aggregated,
                                               references.pop())
    print(text)
    if _OUTPUT.value:
        results_table.write_table(_OUTPUT.value, text,
                                  {"inputs": paths, "rows": aggregated})

if __name__ == "__main__":
    app.run(lambda argv: run_cli(main, argv))
