"""The ``local`` target: a scenario served on loopback by the reference model (see ``target``)."""
