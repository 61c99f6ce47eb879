"""Hu et al.'s published screens of Llama-2-7B and Zephyr-7B: their supplementary tables and
documents read, checked and imported as screens of the kind `published`."""
