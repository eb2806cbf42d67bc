"""Model providers behind one async interface (see base.py)."""
