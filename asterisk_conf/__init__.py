"""The Asterisk configuration users deploy: the .conf templates in this folder (package data)
and their renderer (`asterisk_conf.render`, run by `hotline asterisk render`)."""
