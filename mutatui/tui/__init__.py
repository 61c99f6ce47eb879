"""The explorer: a Textual app over a mutatui database (the engine and store never import it)."""
