"""Local fakes of external services, following their published API documents (see each module)."""
