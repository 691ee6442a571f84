"""duel: a lossless ELT pipeline for advocacy-platform JSON dumps (Postgres + dbt)."""

__version__ = "0.1.0"
