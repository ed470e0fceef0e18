"""coldflow: learning to undo degradations of 2-D fields, judged perceptually."""

__version__ = "0.1.0"
