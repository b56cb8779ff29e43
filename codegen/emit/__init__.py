"""Emitters: each turns the intermediate model (``codegen.ir``) into the text of files."""
