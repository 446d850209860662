"""zshot sim: PyBullet insertion and terrain environments with the Gymnasium API."""
