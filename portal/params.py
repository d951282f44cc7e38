"""Query-string parameters shared by several views."""


def log_offset(raw) -> int:
    """``?offset=`` of the log endpoints (pipelines and Terraform, HTML and API): a byte offset,
    a whole number of 0 or more. Raises ValueError with the message to show."""
    try:
        value = int(raw if raw not in (None, "") else 0)
    except (TypeError, ValueError):
        value = -1
    if value < 0:
        raise ValueError(f"offset must be a whole number of bytes, 0 or more (not {raw!r})")
    return value
