"""What the user writes: composite sweep files (YAML with lines), parameters and grids, the argv a run gets,
cluster profiles (TOML) with their typed values, and sbatch templates. Pure: nothing here contacts anything."""
