"""irc's version, in a module of its own so that any module can read it without importing the
package facade (irc/__init__.py, whose entry points import the whole compiler)."""
__version__ = "0.1.0"
