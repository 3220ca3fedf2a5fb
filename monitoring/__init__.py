"""Evidently monitoring of the served model: drift, data and model quality, guarded retraining."""
