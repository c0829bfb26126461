//! Where the kernel hands over: `_start`, the initial stack it built (the
//! arguments and the environment, read in place, never copied), and the
//! panic handler; the way out is the library's `sys::exit` (`exit_group`).
//!
//! Nothing runs before `_start`: no C runtime, no TLS, no constructors.
//! The static executable is not position-independent, so there is nothing
//! to relocate either. This file must never write to the initial stack's
//! arrays or strings (they are lent out as `'static`), nor unwind.

use core::ffi::{CStr, c_char};

use mpecho_worker::sys::exit;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("mpecho-worker's _start and system calls are written for x86_64 Linux");

// The kernel starts the process at `_start` with rsp pointing at argc,
// followed by argv[0..argc], NULL, envp..., NULL, auxv. rsp is 16-byte
// aligned there, but nothing promises it, and the SysV ABI wants it
// aligned at every call: align it, then call the Rust entry with the
// address of argc. rbp = 0 marks the outermost frame for debuggers.
core::arch::global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

/// The Rust side of `_start`: reads the initial stack, runs the worker,
/// exits with what it returned.
extern "C" fn entry(stack: *const usize) -> ! {
    // SAFETY: `stack` is the kernel's initial stack pointer: a usize argc,
    // then argc + 1 pointers (the last NULL), then the environment's
    // pointers up to a NULL. Both arrays and the strings they point to
    // live, unchanged, for the whole life of the process.
    let process = unsafe {
        let argc = *stack;
        let argv = stack.add(1).cast::<*const c_char>();
        Process {
            argv,
            envp: argv.add(argc + 1),
        }
    };
    exit(crate::main(&process))
}

/// The arguments and environment the process was started with.
pub struct Process {
    argv: *const *const c_char,
    envp: *const *const c_char,
}

impl Process {
    /// `argv`, program name included, each as its bytes.
    pub fn args(&self) -> CStrings {
        CStrings(self.argv)
    }

    /// The value of environment variable `name`, if set.
    pub fn var(&self, name: &[u8]) -> Option<&'static [u8]> {
        CStrings(self.envp).find_map(|entry| {
            entry
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(b"="))
        })
    }
}

/// The strings of a NULL-terminated array of the initial stack.
#[derive(Clone)]
pub struct CStrings(*const *const c_char);

impl Iterator for CStrings {
    type Item = &'static [u8];

    fn next(&mut self) -> Option<&'static [u8]> {
        // SAFETY: `self.0` points into one of the initial stack's arrays,
        // never past its NULL (we stop there, below); each non-NULL entry
        // is a NUL-terminated string that lives as long as the process
        // and that nothing writes to ('static).
        unsafe {
            let string = *self.0;
            if string.is_null() {
                return None;
            }
            self.0 = self.0.add(1);
            Some(CStr::from_ptr(string).to_bytes())
        }
    }
}

/// A panic cannot unwind here (`panic = "abort"`, and no unwinder is
/// linked): the worker ends as for an I/O error, status 1, and its master
/// logs the status. Nothing is formatted: the worker's code is written
/// not to panic, and a panic would mean the state is not to be trusted.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit(mpecho_handoff::WorkerExit::IoError.code())
}

/// The precompiled `core` was built to unwind, and its unwinding tables
/// name this symbol; nothing here unwinds (`panic = "abort"`, no unwinder
/// linked), so it is never called. It only satisfies the linker.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
