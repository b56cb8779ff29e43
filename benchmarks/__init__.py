"""``make bench``: one module per measured area, the timing helpers and the report apart;
``python benchmarks/run.py`` runs them all."""
