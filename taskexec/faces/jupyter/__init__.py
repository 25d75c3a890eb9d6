"""The Jupyter face: probe results as DataFrames, charts, headless notebook reports."""
