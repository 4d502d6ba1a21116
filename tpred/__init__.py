"""tpred: predict transfer accuracy of pre-trained models without fine-tuning."""

__version__ = "0.1.0"
