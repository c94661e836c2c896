"""Embedded AWS Price List Service (``pricing``): EC2 on-demand products for the kit's instance types."""
