"""Loading trained runs (kept separate so ``twin.train`` can import it without cycles)."""

from twin.model.response import load_model, load_twin_module, run_info

__all__ = ["load_model", "load_twin_module", "run_info"]
