//! Golden-file helpers shared by the golden tests: a file under `tests/golden/<dir>/` holds the
//! exact bytes expected; `BLESS=1` rewrites it after a deliberate change (review the diff).

use std::path::PathBuf;

pub struct Golden(&'static str);

impl Golden {
    pub const fn new(dir: &'static str) -> Self {
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(self.0)
            .join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn check(&self, name: &str, actual: &[u8]) {
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(self.path(name), actual).unwrap();
            return;
        }
        let expected = self.read(name);
        assert!(
            expected == actual,
            "{name} differs:\n--- expected\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        );
    }
}
