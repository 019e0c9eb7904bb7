use crate::Backend;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The backends of a site, by name. `default` always exists.
#[derive(Clone)]
pub struct BackendSet {
    map: BTreeMap<String, Arc<dyn Backend>>,
}

impl BackendSet {
    pub const DEFAULT: &'static str = "default";

    /// A set whose default backend is `default`.
    pub fn new(default: Arc<dyn Backend>) -> Self {
        Self { map: BTreeMap::from([(Self::DEFAULT.to_owned(), default)]) }
    }

    pub fn with(mut self, name: impl Into<String>, backend: Arc<dyn Backend>) -> Self {
        self.map.insert(name.into(), backend);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        self.map.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn Backend>)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }
}
