"""pytest plugin (entry point ``pytest11``): scenario folders as test items. See issue 5."""
