class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why and what to do."""
