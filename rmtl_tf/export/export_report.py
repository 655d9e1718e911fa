"""What export.py prints about an export: the files written, their sizes
and signatures, and what changed since the previous version."""

import os

from rmtl_tf.export import export_metadata, runners, tflite_file


def print_files(result, indent=""):
    """Prints one exported model of `export_lib.export`'s result."""
    try:
        interpreter, _ = runners.litert()
    except ImportError:
        interpreter = None
    print(f"{indent}SavedModel: {result['saved_model']}")
    for mode, path in result["tflite_files"].items():
        label = "TFLite:" if mode == "none" else f"TFLite {mode}:"
        size = os.path.getsize(path) / 2**20
        print(f"{indent}{label:<16}{path} ({size:.2f} MB)")
        if interpreter is None:
            print(f"{indent}  (to list its signatures: pip install "
                  "ai-edge-litert)")
            continue
        for line in tflite_file.signature_summary(
                interpreter(model_path=path)):
            print(f"{indent}{line}")
    print(f"{indent}Signatures: {', '.join(result['signatures'])}")
    metadata = export_metadata.read(result["metadata"])
    print(f"{indent}Metadata:   {result['metadata']} (bank "
          f"{metadata['bank_fingerprint'][:12]})")
    previous = metadata["previous_version"]
    if previous:
        print(f"{indent}Since version {previous['version']}: new "
              f"{previous['new_tasks']}, unchanged "
              f"{previous['unchanged_tasks']}, changed "
              f"{previous['changed_tasks']}")


def print_result(result):
    """Prints everything `export_lib.export` wrote: the model, its folded
    tasks, task packs and the TF Serving config."""
    print_files(result)
    for task, folded in result["folded"].items():
        print(f"Folded {task}:")
        print_files(folded, indent="  ")
    for task, path in result.get("packs", {}).items():
        print(f"Task pack {task}: {path} "
              f"({os.path.getsize(path) / 2**20:.2f} MB)")
    print(f"TF Serving config: {result['models_config']}")
