"""maskwatch-train: prepare face crops, fit, evaluate, explain, export and compare mask classifiers.

TensorFlow/Keras (the ``train`` extra) is imported only inside this package, never by ``maskwatch``.
Run ``maskwatch-train --help`` (or ``python -m train.cli --help``) for the subcommands.
"""
