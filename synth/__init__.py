"""A synthetic population and its providers' extracts with the truth (``pprl synth``), for
the demo, pilots and benchmarks: no real person's data anywhere.

Needs the ``synth`` extra (Faker, SSA baby names, nicknames, jellyfish).
"""

from .cli import synth_command, synthesize
from .population import PopulationConfig, make_population
from .providers import DEFAULT_PROVIDERS, IDENTIFIER_COLUMNS, ProviderSpec, make_provider

__all__ = ["DEFAULT_PROVIDERS", "IDENTIFIER_COLUMNS", "PopulationConfig", "ProviderSpec",
           "make_population", "make_provider", "synth_command", "synthesize"]
