"""gateway-sandbox: a disposable local Gateway API stack and a declarative conformance suite."""

__version__ = "0.1.0"
