"""Generation: sample the trained generators and write what they make as nuScenes-format roots."""
