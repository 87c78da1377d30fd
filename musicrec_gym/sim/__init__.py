"""The simulator: listener truth, response, leave and reward models, joined in a batch."""
