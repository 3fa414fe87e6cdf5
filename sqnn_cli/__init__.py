"""sqnn: fair classifiers with a stochastically quantized binary layer."""

__version__ = "0.1.0"
