"""Single-source notebooks (solutions -> labs), the headless lab runner and its reports."""
