"""One Textual screen per workflow step (generate, mask, fine-tune, sweep, results)."""
