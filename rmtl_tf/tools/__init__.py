"""Command-line tools: `python -m rmtl_tf.tools.<name> --help`."""
