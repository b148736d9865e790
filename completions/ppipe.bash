_ppipe_completion() {
    local IFS=$'\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _PPIPE_COMPLETE=complete_bash $1 ) )
    if [[ ${COMP_WORDS[COMP_CWORD]} == [\"\']* ]]; then
        compopt -o nospace
        if (( ${#COMPREPLY[@]} == 1 )); then
            COMPREPLY+=( "${COMPREPLY[0]} " )
        fi
    fi
    return 0
}

complete -o default -F _ppipe_completion ppipe
