"""mutatui: mutagenesis screens of language-model weights, and a terminal explorer for them."""

__version__ = "0.1.0"
