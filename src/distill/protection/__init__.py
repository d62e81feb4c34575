"""Protection of a served model: output watermarks, the radioactivity trace, and the distillation-traffic guard."""
