//! The `res_*` resolver calls: a raw DNS query answered through the stack.

use super::*;

const NO_DATA: c_int = 4;

/// Copies an answer into the caller's buffer; returns its full length (as
/// `res_query` does, which may exceed `anslen`) or -1 with `h_errno` set.
unsafe fn answer_out(
    r: Result<(Vec<u8>, crate::dns::Response), Failure>,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    match r {
        Ok((raw, resp)) => {
            if resp.rcode == crate::dns::RCODE_NXDOMAIN {
                set_h_errno(HOST_NOT_FOUND);
                return -1;
            }
            let an = u16::from_be_bytes([raw[6], raw[7]]);
            if an == 0 {
                set_h_errno(NO_DATA);
                return -1;
            }
            if !answer.is_null() && anslen > 0 {
                let n = raw.len().min(anslen as usize);
                // SAFETY: the caller's buffer of `anslen` bytes.
                unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), answer, n) };
            }
            raw.len() as c_int
        }
        Err(f) => {
            set_h_errno(h_errno_of(f));
            -1
        }
    }
}

fn query(name: &str, class: c_int, ty: c_int) -> Result<(Vec<u8>, crate::dns::Response), Failure> {
    let q = crate::dns::query_class(resolve::random_id(), name, class as u16, ty as u16)
        .map_err(|_| Failure::NoRecovery)?;
    resolve::ask_raw(&resolve::config(), &q)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_query(
    dname: *const c_char,
    class: c_int,
    ty: c_int,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    // SAFETY: the caller's string.
    let Some(name) = (unsafe { cstr(dname) }) else {
        set_h_errno(NO_RECOVERY);
        return -1;
    };
    // SAFETY: the caller's buffer.
    unsafe { answer_out(query(name, class, ty), answer, anslen) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_search(
    dname: *const c_char,
    class: c_int,
    ty: c_int,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    // SAFETY: the caller's string.
    let Some(name) = (unsafe { cstr(dname) }) else {
        set_h_errno(NO_RECOVERY);
        return -1;
    };
    let c = resolve::config();
    let mut last = Err(Failure::NotFound);
    for cand in resolve::candidates(&c, name) {
        let r = query(&cand, class, ty);
        if let Ok((_, resp)) = &r {
            let an = resp.answers.len();
            if resp.rcode == crate::dns::RCODE_NOERROR && an > 0 {
                // SAFETY: the caller's buffer.
                return unsafe { answer_out(r, answer, anslen) };
            }
        }
        last = r;
    }
    // SAFETY: the caller's buffer.
    unsafe { answer_out(last, answer, anslen) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_send(
    msg: *const u8,
    msglen: c_int,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    if msg.is_null() || msglen < 12 {
        set_h_errno(NO_RECOVERY);
        return -1;
    }
    // SAFETY: the caller's message of `msglen` bytes.
    let q = unsafe { std::slice::from_raw_parts(msg, msglen as usize) };
    match resolve::ask_raw(&resolve::config(), q) {
        Ok((raw, _)) => {
            if !answer.is_null() && anslen > 0 {
                // SAFETY: the caller's buffer.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        raw.as_ptr(),
                        answer,
                        raw.len().min(anslen as usize),
                    )
                };
            }
            raw.len() as c_int
        }
        Err(f) => {
            set_h_errno(h_errno_of(f));
            -1
        }
    }
}

// glibc also exports these names (older binaries link against them), and the
// reentrant `res_n*` forms whose state argument the shim's resolver does not need.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __res_query(
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_query(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __res_search(
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_search(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __res_send(m: *const u8, ml: c_int, a: *mut u8, l: c_int) -> c_int {
    // SAFETY: same contract.
    unsafe { res_send(m, ml, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_nquery(
    _st: *mut libc::c_void,
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_query(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_nsearch(
    _st: *mut libc::c_void,
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_search(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_nsend(
    _st: *mut libc::c_void,
    m: *const u8,
    ml: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_send(m, ml, a, l) }
}
