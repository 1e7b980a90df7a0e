"""Hostile job: eval attacker text."""
attacker_text = "__import__('os').getcwd()"
print(eval(attacker_text))
