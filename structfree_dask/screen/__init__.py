"""From cells to a screen: the plate map, and per-well, per-condition and per-compound tables.

:mod:`.platemap` reads and checks a plate map CSV (which condition, compound, dose and
role each well has), stores it in the plate as an ngio condition table
(``<plate>/tables/plate_map``) and joins it to per-cell rows. :mod:`.tables` holds the
pure functions from per-cell rows to the screen tables: per well x timepoint, per
condition x timepoint, Z' per timepoint from the controls, and four-parameter logistic
fits per compound x timepoint. :mod:`.plate_screen` computes them for a measured plate on
a Dask cluster (one task per well) and writes them beside its plate-level dataset
(``<plate>/measurements/<table>__screen/``). :mod:`.view` draws them (the
screen's section of the plate view, ``structfree-dask report``). The commands are ``structfree-dask
annotate`` and ``structfree-dask screen`` (:mod:`structfree_dask.cli.screen`); see
docs/screen.md.
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it exports here (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "platemap": ["PlateMapError", "Annotation", "annotate_plate", "check_plate_map",
                 "join_plate_map", "load_plate_map", "parse_plate_map",
                 "read_annotated_dataset"],
    "tables": ["well_stats", "condition_stats", "z_prime", "zprime_value", "four_pl",
               "fit_four_pl", "dose_response"],
    "plate_screen": ["SCREEN_TABLES", "ScreenPlan", "ScreenResult", "check_screen",
                     "read_screen_tables", "screen_location", "screen_plate"],
    "view": ["ScreenView", "screen_addon"],
})
