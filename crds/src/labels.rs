//! A service's labels: a string map kept as a sorted vector.
//!
//! A `BTreeMap<String, String>` with one entry allocates a node for eleven (544 bytes); a stack's
//! service has two such maps (its labels and its containers'), held by the watch's store and by
//! the stack's pass: about 2 MB for a stack of 1000. This holds what it has. On the wire and in
//! the CRD schema it is the same map (an object of strings), in the same order.

use std::{borrow::Cow, collections::BTreeMap};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map of strings, sorted by key, each key once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }
    /// Sets `key` to `value`, returning what it had.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let (key, value) = (key.into(), value.into());
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }
    /// The entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &String)> + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + Clone {
        self.0.iter().map(|(k, _)| k)
    }
    /// As a `BTreeMap`, for the APIs that take one.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    /// Sorted by key; of a key given twice, the last value, as a map's.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut all: Vec<(String, String)> = entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        // Stable: equal keys keep their order. Of a run of equal keys the first stays in place
        // and takes each later one's value, so the last value is kept.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        all.shrink_to_fit();
        Labels(all)
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted, each key once.
        Labels(map.into_iter().collect())
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Labels;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut entries: Vec<(String, String)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

impl JsonSchema for Labels {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        <BTreeMap<String, String>>::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        <BTreeMap<String, String>>::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <BTreeMap<String, String>>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_and_writes_as_the_map_it_stands_for() {
        let map: BTreeMap<String, String> = serde_json::from_str(r#"{"b":"2","a":"1","c":"3"}"#).unwrap();
        let labels: Labels = serde_json::from_str(r#"{"b":"2","a":"1","c":"3"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        assert_eq!(labels, Labels::from(map.clone()));
        assert_eq!(labels.to_map(), map);
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        // A key given twice: the last value, as serde_json's map keeps.
        let twice: Labels = serde_json::from_str(r#"{"k":"1","k":"2"}"#).unwrap();
        let twice_map: BTreeMap<String, String> = serde_json::from_str(r#"{"k":"1","k":"2"}"#).unwrap();
        assert_eq!(twice.to_map(), twice_map);
        assert!(serde_json::from_str::<Labels>(r#"["a"]"#).is_err());
        assert_eq!(
            serde_json::to_value(schemars::schema_for!(Labels)).unwrap()["type"],
            serde_json::to_value(schemars::schema_for!(BTreeMap<String, String>)).unwrap()["type"]
        );
    }

    #[test]
    fn edits_keep_it_sorted_with_each_key_once() {
        let mut labels = Labels::from([("m", "1")]);
        assert_eq!(labels.insert("z", "2"), None);
        assert_eq!(labels.insert("a", "3"), None);
        assert_eq!(labels.insert("m", "4"), Some("1".to_string()));
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [
                (&"a".into(), &"3".into()),
                (&"m".into(), &"4".into()),
                (&"z".into(), &"2".into())
            ]
        );
        assert_eq!(labels.get("m").map(String::as_str), Some("4"));
        assert!(labels.contains_key("z") && !labels.contains_key("y"));
        assert_eq!(labels.remove("a"), Some("3".to_string()));
        assert_eq!(labels.len(), 2);
        let from_pairs: Labels = [("b", "1"), ("a", "2"), ("b", "3")].into_iter().collect();
        assert_eq!(from_pairs, Labels::from([("a", "2"), ("b", "3")]));
    }
}
