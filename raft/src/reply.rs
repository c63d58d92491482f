//! What applying an entry answered, as openraft carries it: the application's response with
//! its type erased, so one openraft type configuration serves every [`crate::Application`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// An application's answer to one entry, type-erased; entries without a command answer
/// nothing.
#[derive(Clone, Default)]
pub struct Reply {
    answer: Option<Arc<dyn Any + Send + Sync>>,
}

impl Reply {
    /// The answer `response`.
    pub(crate) fn of<R: Any + Send + Sync>(response: R) -> Reply {
        Reply {
            answer: Some(Arc::new(response)),
        }
    }

    /// No answer (an entry without a command).
    pub(crate) fn nothing() -> Reply {
        Reply::default()
    }

    /// The answer, if it is an `R`.
    pub(crate) fn get<R: Any + Clone>(&self) -> Option<R> {
        self.answer.as_ref()?.downcast_ref::<R>().cloned()
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.answer {
            Some(_) => f.write_str("Reply(..)"),
            None => f.write_str("Reply(nothing)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_comes_back_only_as_its_own_type() {
        let r = Reply::of(7u32);
        assert_eq!(r.get::<u32>(), Some(7));
        assert_eq!(r.get::<u64>(), None);
        assert_eq!(Reply::nothing().get::<u32>(), None);
    }
}
