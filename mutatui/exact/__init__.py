"""The exact screening engine: many mutations against one probe, each outcome exactly what
editing that weight and generating alone gives, far faster than doing that (`Screener`)."""
