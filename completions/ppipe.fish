function __ppipe_complete
    set -l token (commandline -ct)
    set -l line (commandline -cp | string collect)
    switch "$token"
        case '"*' "'*"
            set -l found (env COMP_WORDS="$line" COMP_CWORD=(count (commandline -opc)) \
                              _PPIPE_COMPLETE=complete_bash ppipe | string match -v '')
            set -q found[1]; and printf '%s\n' $found
            if test (count $found) -eq 1; and not string match -q -r -- '[/=@:.,-]$' $found[1]
                printf '%s \n' $found[1]
            end
        case '*'
            set -l found (env _PPIPE_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args \
                              _TYPER_COMPLETE_ARGS="$line" ppipe | string match -v '')
            if set -q found[1]
                printf '%s\n' $found
            else
                __fish_complete_path "$token"
            end
    end
end

complete --command ppipe --no-files --arguments '(__ppipe_complete)'
