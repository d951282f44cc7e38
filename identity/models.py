"""Identity's own records (directory groups, sync log) live here."""
