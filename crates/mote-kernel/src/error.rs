//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use crate::bundles;

/// What can go wrong while obtaining a kernel or resolving its modules.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No cache directory could be derived from the environment.
    #[error("no cache directory: set MOTE_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,

    /// A file system operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done (`reading`, `creating`, …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `[kernel] path` names no readable file.
    #[error("kernel image {} (from [kernel] path) not found", path.display())]
    LocalKernelMissing {
        /// The resolved path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `[kernel] path` is set but `modules` is not.
    #[error(
        "[kernel] path is set to {} but modules is not: set modules to the kernel's lib/modules/VERSION directory",
        path.display()
    )]
    LocalModulesUnset {
        /// The kernel image path.
        path: PathBuf,
    },

    /// `[kernel] modules` is set but `path` is not.
    #[error(
        "[kernel] modules is set to {} but path is not: set path to the matching kernel image, or remove modules to use the package",
        modules.display()
    )]
    LocalPathUnset {
        /// The modules directory.
        modules: PathBuf,
    },

    /// `[kernel] modules` names no directory.
    #[error("modules directory {} (from [kernel] modules) is not a directory", path.display())]
    LocalModulesMissing {
        /// The resolved path.
        path: PathBuf,
    },

    /// An apt tool could not be run at all.
    #[error(
        "cannot run `{tool}` to fetch {package}: install apt, or set [kernel] path and modules to a local kernel"
    )]
    AptMissing {
        /// `apt-get`, `apt-cache` or `dpkg-deb`.
        tool: String,
        /// The package being fetched.
        package: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// apt knows no package of that name.
    #[error(
        "apt knows no package {package}: run `apt-get update`, check [kernel] package, or set [kernel] path and modules to a local kernel"
    )]
    PackageUnknown {
        /// The package name.
        package: String,
    },

    /// An apt tool ran and failed.
    #[error(
        "`{command}` failed ({status}): {stderr}\ncheck the network and apt sources (`apt-get update`), or set [kernel] path and modules to a local kernel"
    )]
    AptFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The meaningful part of its standard error.
        stderr: String,
    },

    /// The downloaded package holds no kernel.
    #[error("package {package} holds no kernel: no boot/vmlinuz-VERSION with a lib/modules/VERSION beside it")]
    NotAKernel {
        /// The package name.
        package: String,
    },

    /// A requested module is neither a file in the tree nor built in.
    #[error("{}", unknown_module_message(name, suggestions))]
    UnknownModule {
        /// The name asked for.
        name: String,
        /// Up to three nearest real module names.
        suggestions: Vec<String>,
    },

    /// A module depends on a module the tree does not have.
    #[error("module {module} depends on {dependency}, which is neither in the modules directory nor built in")]
    MissingDependency {
        /// The module whose dependency is missing.
        module: String,
        /// The missing dependency.
        dependency: String,
    },

    /// The dependency graph has a cycle.
    #[error("module dependency cycle: {}", cycle.join(" -> "))]
    DependencyCycle {
        /// The modules on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },

    /// A module file is not a loadable kernel module.
    #[error("{}: not a kernel module: {reason}", path.display())]
    BadModule {
        /// The module file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A line of `modules.dep` does not parse.
    #[error("{}:{line}: expected `path.ko: dependency.ko …`, found {text:?}", path.display())]
    BadModulesDep {
        /// The `modules.dep` file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

fn unknown_module_message(name: &str, suggestions: &[String]) -> String {
    let mut message = format!("module `{name}` is not in this kernel");
    if !suggestions.is_empty() {
        message.push_str(&format!(" (did you mean {}?)", suggestions.join(", ")));
    }
    let normalized = crate::normalize(name);
    let bundles = bundles::bundles_containing(&normalized);
    if !bundles.is_empty() {
        let named: Vec<String> = bundles.iter().map(|b| format!("`{b}`")).collect();
        let asks = if bundles.len() == 1 {
            format!("the {} bundle asks", named[0])
        } else {
            format!("the {} bundles ask", named.join(" and "))
        };
        message.push_str(&format!(
            "; {asks} for it: use a kernel that has it (the Debian cloud kernel has no bare-metal drivers; \
             linux-image-amd64 does), or list its modules instead of the bundle"
        ));
    }
    message.push_str(
        "; the kernel's modules are the *.ko files under its lib/modules/VERSION directory (`find DIR -name '*.ko*'`), built-ins are listed in modules.builtin",
    );
    message
}

/// `map_err` helper: an [`KernelError::Io`] for `action` on `path`.
pub(crate) fn io_error(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(io::Error) -> KernelError {
    let path = path.to_path_buf();
    move |source| KernelError::Io {
        action,
        path,
        source,
    }
}
