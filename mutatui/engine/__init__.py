"""The engine: models, matrices, sites, mutations, interventions and decoding. No UI, no SQL."""
