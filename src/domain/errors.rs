use std::fmt;

/// What is wrong with one input field. The field's location is added by whoever collects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `["email"]`; empty until collected.
    pub loc: Vec<String>,
    pub msg: String,
    /// A short machine-readable kind, e.g. `missing`, `value_error`, `string_too_short`.
    pub kind: &'static str,
}

impl FieldError {
    pub fn new(msg: impl Into<String>, kind: &'static str) -> Self {
        Self {
            loc: Vec::new(),
            msg: msg.into(),
            kind,
        }
    }

    pub fn missing() -> Self {
        Self::new("Field required", "missing")
    }

    pub fn at(mut self, field: &str) -> Self {
        self.loc.insert(0, field.to_owned());
        self
    }
}

/// Collects every failing field of one input, so a client learns all its mistakes at once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value of a successful parse, or records the failure under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.0.push(err.at(field));
                None
            }
        }
    }

    /// Records a missing required field and returns `None`, or passes the value through.
    pub fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.0.push(FieldError::missing().at(field));
        }
        value
    }

    pub fn push(&mut self, field: &str, err: FieldError) {
        self.0.push(err.at(field));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing failed.
    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.loc.join("."), e.msg))
            .collect();
        f.write_str(&parts.join("; "))
    }
}
