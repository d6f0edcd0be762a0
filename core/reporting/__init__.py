"""Pictures of results: built as matplotlib figures here, saved by whoever needs a file."""
