"""Hostile job: make ast.parse compile real code by patching the flag it reads from its module."""
import ast

ast.PyCF_ONLY_AST = 0
exec(ast.parse("print('new code ran')"))
