//! Writes the CRD YAML generated from the Rust types to `crds/generated/` and, as templates with
//! the `crds.enabled` / `crds.keep` toggles, to the Helm chart's `templates/crds/`.
use std::{fs, path::Path};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let targets = [
        (root.join("generated"), swarm_operator_crds::generated_files()),
        (
            root.join("../charts/swarm-operator/templates/crds"),
            swarm_operator_crds::chart_files(),
        ),
        (root.join("../argocd"), swarm_operator_crds::argocd_files()),
    ];
    for (dir, files) in targets {
        fs::create_dir_all(&dir)?;
        for (file, yaml) in files {
            fs::write(dir.join(&file), &yaml)?;
            println!("wrote {}", dir.join(&file).display());
        }
    }
    Ok(())
}
