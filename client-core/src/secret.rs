//! A password held in memory: never printed by `Debug`, never serialised.
//!
//! Account passwords go through here (the server password stays a plain
//! option, as before): a front end builds a [`Secret`] from what the user
//! typed, and only the login and account requests read it back.

/// A secret string (an account password). Its `Debug` shows no text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_text() {
        let s = Secret::new("hunter22 hunter22");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(..))");
        assert_eq!(s.expose(), "hunter22 hunter22");
    }
}
