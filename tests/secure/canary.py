"""The credentials every secured test uses. Each password is a distinct "canary": tests search all
output (logs, errors, CLI output, metrics, events) for them, so a leak is caught wherever it is."""

KAFKA_USER = "sw-kafka-user"
KAFKA_PASSWORD = "canary-kafka-3f9c1a7e"
REDIS_USER = "sw-redis-user"
REDIS_PASSWORD = "canary-redis-8d2e7b40"
KEY_PASSWORD = "canary-keypw-51a0c4d9"  # encrypts the client key (Pki.client_key_encrypted_file)
WRONG_PASSWORD = "canary-wrong-0b6d2f13"  # a password no service accepts

ALL_SECRETS = (KAFKA_PASSWORD, REDIS_PASSWORD, KEY_PASSWORD, WRONG_PASSWORD)
