//! Writes the CRD YAML generated from the Rust types to `crds/generated/` and the Helm chart's `crds/`.
use std::{fs, path::Path};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let targets = [root.join("generated"), root.join("../charts/swarm-operator/crds")];
    for dir in &targets {
        fs::create_dir_all(dir)?;
        for (file, yaml) in swarm_operator_crds::generated_files() {
            fs::write(dir.join(&file), &yaml)?;
            println!("wrote {}", dir.join(&file).display());
        }
    }
    Ok(())
}
