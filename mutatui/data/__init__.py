"""Data shipped with mutatui: the multiple-choice question set of the choice probe."""
